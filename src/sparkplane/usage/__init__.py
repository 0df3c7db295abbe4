"""Metering: tokens, images, device-seconds, energy and cost per request and job; reports."""
