"""`rl-post proof <recipe>`: the whole learning proof of a recipe as one resumable command."""
