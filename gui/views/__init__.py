"""The widgets: each draws a Trace and the ViewState, and holds no state of its own."""
