"""Three worked search-and-answer episodes, written for this project, rendered by every agent format.

Each example is a question, the searches made (thought, query, observation) and the final
(thought, answer). The facts are real but the observations are hand-written summaries, not
copies of any corpus. They show a bridge question, a comparison and a yes/no question, so a
small model sees two searches before answering rather than stopping at the first entity.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkedSearch:
    thought: str
    query: str
    observation: str


@dataclass(frozen=True)
class WorkedExample:
    question: str
    searches: tuple[WorkedSearch, ...]
    final_thought: str
    answer: str


WORKED_EXAMPLES: tuple[WorkedExample, ...] = (
    WorkedExample(
        question="In which country was the director of the film Pan's Labyrinth born?",
        searches=(
            WorkedSearch("I need to find who directed Pan's Labyrinth.", "Pan's Labyrinth film",
                         "[Pan's Labyrinth] Pan's Labyrinth is a 2006 dark fantasy film written and directed "
                         "by Guillermo del Toro."),
            WorkedSearch("The director is Guillermo del Toro. Now I need his birthplace.", "Guillermo del Toro",
                         "[Guillermo del Toro] Guillermo del Toro (born 9 October 1964) is a Mexican filmmaker "
                         "born in Guadalajara, Jalisco."),
        ),
        final_thought="Guillermo del Toro was born in Guadalajara, which is in Mexico.",
        answer="Mexico",
    ),
    WorkedExample(
        question="Which was founded first, the University of Bologna or the University of Oxford?",
        searches=(
            WorkedSearch("I need the founding year of each university, starting with Bologna.",
                         "University of Bologna founded",
                         "[University of Bologna] The University of Bologna, founded in 1088, is the oldest "
                         "university in continuous operation."),
            WorkedSearch("Bologna was founded in 1088. Now I need the date for Oxford.", "University of Oxford",
                         "[University of Oxford] The University of Oxford is a collegiate university in Oxford, "
                         "England. There is evidence of teaching there as early as 1096."),
        ),
        final_thought="Bologna dates from 1088 and Oxford from about 1096, so Bologna was first.",
        answer="University of Bologna",
    ),
    WorkedExample(
        question="Are the Matterhorn and Mont Blanc in the same mountain range?",
        searches=(
            WorkedSearch("I need the mountain range of the Matterhorn.", "Matterhorn mountain",
                         "[Matterhorn] The Matterhorn is a mountain of the Alps, straddling the border between "
                         "Switzerland and Italy."),
            WorkedSearch("The Matterhorn is in the Alps. Now I need the range of Mont Blanc.", "Mont Blanc",
                         "[Mont Blanc] Mont Blanc is the highest mountain in the Alps and in Western Europe, on "
                         "the border of France and Italy."),
        ),
        final_thought="Both mountains are in the Alps.",
        answer="yes",
    ),
)
