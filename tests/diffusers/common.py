"""What both diffusers venvs run: the prompt, subjects, seed and the pipeline's defaults (50 steps, 7.5)."""

PROMPT = "a cat and a frog"
TOKEN_INDICES = [2, 5]  # "cat", "frog" as the deprecated pipeline numbers them (start token = 0)
SUBJECTS = "cat, frog"
SEED = 0
STEPS = 50
GUIDANCE = 7.5
