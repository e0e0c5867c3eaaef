"""Load: read what the user declared (gate.yml, the golden set, thresholds, prompts, the baseline),
validated, with file:line messages. Reads files only; nothing here runs a pipeline."""
