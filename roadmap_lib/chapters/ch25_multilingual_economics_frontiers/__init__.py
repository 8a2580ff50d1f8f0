"""Chapter 25, multilingual, economics and frontiers: ``multilingual_study`` (the parallel Sphinx
sample, token premiums, cross-lingual transfer), ``costs`` (published configurations, decode
throughput), ``induction`` (the copy model opened up with ``roadmap_lib.interpret``), ``artifacts``,
``exercises`` and ``plots``."""
