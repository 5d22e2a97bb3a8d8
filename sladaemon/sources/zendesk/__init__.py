"""Zendesk Support: incremental ticket export, ticket event export, audits and SLA sideloads."""
