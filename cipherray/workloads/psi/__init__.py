"""`cipherray run psi`: private set intersection of parties' files on the runtime."""
