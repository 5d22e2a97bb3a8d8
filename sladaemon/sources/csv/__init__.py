"""The normalized event CSV as a live source."""
