"""`gsedit studio`: the interactive browser front end (viser) over `gsedit.Session`.

One small class per panel (panels.py), the scene display (view.py), and the studio that ties them
to one open session (app.py). The page never holds the truth: every action goes through the
session, which writes its folder; what the page shows is read back from there.
"""
