"""Training: data readers, feature caches, objectives, the Accelerate loop and the staged tiny recipe.

A regular package (not a namespace one) so that it ships in the wheel and import-linter sees its imports.
Nothing is imported here: `mm.train.recipe` pulls in the whole model.
"""
