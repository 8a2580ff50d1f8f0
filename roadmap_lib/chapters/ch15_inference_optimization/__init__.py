"""Chapter 15 (inference optimization): the draft model artifact, experiment drivers and plots."""
