"""The HTTP surface, kept thin: parse, call the room that does the work, answer."""
