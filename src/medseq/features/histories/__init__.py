"""Patient histories: visit sequences of codes over a vocabulary fitted on training subjects."""
