"""Jobs of several runs: the quickstart and the bench train every chosen family for a share of one time budget
(showcase.py) and write one report (report.py)."""
