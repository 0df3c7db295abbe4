"""What exists: devices, their health and circuit breakers, and the models they serve."""
