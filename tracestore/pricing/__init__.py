"""Pricing: the project's price book (:mod:`.book`), the pricer over genai-prices and the book
(:mod:`.pricer`), and explicit re-pricing of stored nodes (:mod:`.reprice`)."""
