"""One module per screen (a tab of the app); each owns its handlers and workers."""
