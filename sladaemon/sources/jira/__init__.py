"""Jira Service Management Cloud as a source: JQL search with token paging, changelogs in bulk,
comments and SLA fields from the search results, reconciliation over the open requests."""
