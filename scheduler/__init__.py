"""The daemon: when to revisit, one run at a time, one leader, run history and status."""
