"""Host-side code that talks to a built board (``accel run``)."""
