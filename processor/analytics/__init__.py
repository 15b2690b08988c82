"""The analysts' side: reports, sends, GDPR erasure, the read-only query endpoint, dashboard."""
