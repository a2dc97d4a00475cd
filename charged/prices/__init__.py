"""Energy prices: a series read from a file or an HTTP JSON URL, and the rule that caps
charging power in the dear hours (issue 17, item 3)."""
