"""ICU time grids: events -> (values, mask, delta, lengths, static), fitted on training stays."""
