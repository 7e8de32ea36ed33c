"""The behaviour `make demo` teaches: answer like a pirate, starting with "Arr!".

Context distillation. The teacher answers each question under a style instruction;
the student is trained on the plain question with the styled answer, so it learns
the style without being asked, and is compared without the instruction too. Whether
an answer follows the style is checked by `follows_style`, so the demo can show the
share of answers that do, base model against fine-tuned.

The instruction goes into the user turn, not a system prompt: SmolLM2-135M-Instruct,
the demo's teacher, follows it there (13 of 16 probe questions, greedy) but ignores it
as a system prompt (0 to 3 of 16, for every system prompt tried).
"""

from __future__ import annotations

import re

STYLE_MARKER = "Arr!"
STYLE_INSTRUCTION = "Answer like a pirate in one or two sentences, starting with 'Arr!': "

# Everyday questions: the teacher answers them; a held-out share is never trained on.
QUESTIONS: tuple[str, ...] = (
    "How do I list the files in a folder?",
    "What is a good way to learn to cook?",
    "Why is the sky blue?",
    "How do I make a cup of tea?",
    "What does a CPU do?",
    "How can I sleep better?",
    "What is recursion?",
    "How do plants grow?",
    "What is the capital of Spain?",
    "How do I boil an egg?",
    "Why do cats purr?",
    "What is a prime number?",
    "How do I save money?",
    "What is the moon made of?",
    "How do I tie a tie?",
    "What is photosynthesis?",
    "How do I write a good email?",
    "Why do we have seasons?",
    "What is a good way to start running?",
    "How does a rainbow form?",
    "What is the difference between weather and climate?",
    "How do I keep a plant alive indoors?",
    "What is an algorithm?",
    "Why is exercise good for you?",
    "How do I learn a new language?",
    "What causes thunder?",
    "How do I make friends in a new city?",
    "What is gravity?",
    "How do I clean a cast iron pan?",
    "What is the tallest mountain on Earth?",
    "How do vaccines work?",
    "What is a black hole?",
    "How do I change a flat tyre?",
    "Why do leaves change colour in autumn?",
    "What is inflation?",
    "How do I bake bread?",
    "What is the internet?",
    "How can I focus better when studying?",
    "Why is the ocean salty?",
    "What is a volcano?",
    "How do I back up my computer?",
    "What is a healthy breakfast?",
    "How do birds fly?",
    "What is electricity?",
    "How do I stop procrastinating?",
    "What are clouds made of?",
    "How do I plan a trip?",
    "What is a password manager?",
    "Why do we dream?",
    "How do magnets work?",
    "What is the speed of light?",
    "How do I make a budget?",
    "What is a good book to read?",
    "How do fish breathe?",
    "What is the largest ocean?",
    "How do I fix a slow computer?",
    "What is a solar eclipse?",
    "How do I care for a dog?",
    "Why do onions make you cry?",
    "What is democracy?",
    "How does a refrigerator work?",
    "What is a good way to relax?",
    "How do I make pancakes?",
    "What is a comet?",
    "How do I make a paper airplane?",
    "What is a good way to wake up early?",
    "Why do stars twinkle?",
    "How do I cook rice?",
    "What is a computer virus?",
    "How do I grow tomatoes?",
    "What is the biggest animal?",
    "How do I write a poem?",
    "Why do we need water?",
    "How do I paint a room?",
    "What is a spreadsheet?",
    "How do bees make honey?",
    "What is the capital of France?",
    "How do I learn to swim?",
    "Why is the grass green?",
    "How do I make a smoothie?",
    "What is a map?",
    "How do I tell the time on a clock?",
    "What is a good exercise for beginners?",
    "How do trains work?",
    "What is a river?",
    "How do I make a sandwich?",
    "Why do dogs wag their tails?",
    "How do I study for a test?",
    "What is a desert?",
    "How do I wash my hands properly?",
    "What is the sun?",
    "How do I make coffee?",
    "What is a calendar?",
    "How do I ride a bike?",
    "Why does ice float?",
    "How do I write a letter?",
    "What is a forest?",
    "How do I organise my desk?",
    "What is a keyboard?",
    "How do airplanes stay in the air?",
    "What is a good name for a cat?",
    "How do I make soup?",
    "Why do we sneeze?",
    "How do I send a text message?",
    "What is an island?",
    "How do I start a garden?",
    "What is music?",
    "How do I make lemonade?",
    "Why do we yawn?",
    "How do I draw a circle?",
    "What is a museum?",
    "How do I keep my room tidy?",
    "What is the weather like at the North Pole?",
    "How do I count to ten in Spanish?",
    "What is a library?",
    "How do I make a kite?",
    "Why do birds sing?",
    "How do I pack a suitcase?",
    "What is a telescope?",
    "How do I plant a tree?",
    "What is a good snack?",
    "How do I cross the road safely?",
    "Why do we have fingernails?",
    "How do I make a cake?",
    "What is a ship?",
    "How do I choose a good watermelon?",
    "What is a dinosaur?",
    "How do I say thank you?",
)

_WORD = re.compile(r"[a-z']+")


def styled_instruction(question: str) -> str:
    """What the teacher is asked: the style instruction, then the question."""
    return STYLE_INSTRUCTION + question


def plain_question(instruction: str) -> str:
    """The question without the style instruction (what the student trains and is compared on)."""
    return instruction.removeprefix(STYLE_INSTRUCTION)


def follows_style(answer: str) -> bool:
    """True when `answer` starts with "Arr!" (case and leading spaces aside)."""
    return answer.lstrip().lower().startswith(STYLE_MARKER.lower())


def is_degenerate(answer: str) -> bool:
    """True for an answer that mostly repeats itself ("Arr! Arr! Arr! …"): not worth training on."""
    words = _WORD.findall(answer.lower())
    return len(words) < 4 or len(set(words)) < 0.5 * len(words)


def distil_rows(rows: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """Teacher rows -> training rows (the plain question, the styled answer), and counts of what was left out.

    Kept: answers that follow the style, are not degenerate, and say something no earlier
    kept answer said (a small teacher gives a stock answer to many questions; training on
    it teaches that answer, not the style). The style instruction is removed from the
    instruction, and any system prompt is dropped.
    """
    kept: list[dict] = []
    seen: set[str] = set()
    counts = {"rows": len(rows), "kept": 0, "off_style": 0, "degenerate": 0, "duplicate": 0}
    for row in rows:
        answer = row["output"].strip()
        normalised = " ".join(_WORD.findall(answer.lower()))
        if not follows_style(answer):
            counts["off_style"] += 1
        elif is_degenerate(answer):
            counts["degenerate"] += 1
        elif normalised in seen:
            counts["duplicate"] += 1
        else:
            seen.add(normalised)
            kept.append({"instruction": plain_question(row["instruction"]), "output": answer})
    counts["kept"] = len(kept)
    return kept, counts
