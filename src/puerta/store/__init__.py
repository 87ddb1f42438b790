"""Durable state: SQLAlchemy Core tables, the database handle, migrations and queries."""
