"""Storage building blocks shared by capabilities."""
