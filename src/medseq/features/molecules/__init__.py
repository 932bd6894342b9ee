"""Molecules: SMILES tokenisation and enumeration."""
