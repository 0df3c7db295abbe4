"""Who may do what: tenants, API keys, roles, limits, data residency, audit."""
