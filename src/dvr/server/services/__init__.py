"""Business logic of the server: each function works inside one database transaction."""
