"""Decision traces and action records: the schema, readers and queries (see ``query``)."""
