"""Command-line front ends: argument parsing and printing only."""
