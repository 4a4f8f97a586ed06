"""Running a plan on Ray: the driver, its event loop, the actors and live progress."""
