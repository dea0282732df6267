"""The live registry of loaded model versions: load, warm, swap, drain; follows the store."""
