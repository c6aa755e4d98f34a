"""`cipherray run query`: hidden query and joint blacklists (see job.py)."""
