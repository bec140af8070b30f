"""Tests of raftoral_lab.dashboard (a package so helpers import relatively)."""
