from gsedit.cli import entrypoint

entrypoint()
