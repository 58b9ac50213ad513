-- Messages made of parts, and conversations that a provider keeps on its side (issue #17).
-- `chats.handle`: what the provider keeps of the conversation (Copilot's conversation id and the
-- cookies it set for it), JSON as text, so a later process can continue it.
-- `turns.parts`: the parts of the prompt and answer that are not plain text
-- (`{"prompt": [...], "answer": [...]}`, JSON as text); NULL for text-only turns, which every
-- earlier turn is, so every existing row reads as before.
ALTER TABLE chats ADD COLUMN handle TEXT;
ALTER TABLE turns ADD COLUMN parts TEXT;
