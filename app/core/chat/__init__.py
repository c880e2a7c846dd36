"""The chat service (no Qt): turns run end to end here, whichever door they came through."""
