"""Stand-in for the A1111 WebUI v1.10.1 `modules` package (tests only; see ../README.md)."""
