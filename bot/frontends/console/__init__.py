"""The console frontend: alerts on stdout, commands on stdin (frontend.py), its plain-text
rendering (render.py) and its command words (commands.py, review.py, reports.py, controls.py)."""
