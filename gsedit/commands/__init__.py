"""The commands layer: one module per subcommand with its options dataclass, the only code that
prints to the console, parses user-facing options and turns errors into messages. It imports the
library (scene/, render/, cameras/, edit/, models/, metrics/, data/, viewer/); nothing there
imports it."""
