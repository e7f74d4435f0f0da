"""Persistence: one SQLite file through aiosqlite, versioned migrations, repositories."""
