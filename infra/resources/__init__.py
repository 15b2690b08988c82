"""One module per AWS resource, each a ``Resource``: read first, then change only what differs."""
