"""Tests of raftoral_lab.transport (a package so helpers import relatively)."""
