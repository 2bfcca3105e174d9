"""Dataset-production tooling (developers): behaviour-policy training and export, reference-score measuring."""
