"""Host concerns: the settings file, the data folder, the event loop, logs, worker processes."""
