"""TOFU's command line and orchestration: a thin layer over the stage packages."""
