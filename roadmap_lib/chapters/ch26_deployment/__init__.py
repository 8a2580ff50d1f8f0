"""Chapter 26, deployment: load tests of the server, the results files, pitfalls, exercises."""
