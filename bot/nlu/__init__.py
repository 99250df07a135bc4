"""Our Rasa NLU components (tokenizer, featurizer, classifier, anger, FAQ retriever, router).

``rasa train`` imports them from config.yml; importing the package also makes Rasa's training
cache fingerprint sparse features quickly (:mod:`bot.nlu.rasa_fingerprint`).
"""

from bot.nlu import rasa_fingerprint

rasa_fingerprint.install()
