"""`python -m tasks.train CONFIG --data FILE --out DIR [--resume]`: the recipe alone (see recipe.main)."""

from tasks.train.recipe import main

main()
