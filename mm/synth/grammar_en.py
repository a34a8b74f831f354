"""English question templates (see `mm.synth.grammar` for the syntax: `[a|b]`, `{slot}`, `!` held out).

The first template of each family, with the first alternative everywhere, is the canonical question.
"""

from __future__ import annotations

_ASK = "[Could|Can] you tell me"

EN: dict[str, list[str]] = {
    # Image: questions about one shape ({ref}: "the circle", "the red object", "the shape at the top left").
    "colour": [
        "[What|Which] [colour|color] is {ref}?", "[What is|What's] the [colour|color] of {ref}?",
        "{ref}: what [colour|color] is it?", _ASK + " what [colour|color] {ref} is?",
        "What [colour|color] does {ref} have?", "Tell me the [colour|color] of {ref}.",
        "In what [colour|color] is {ref} drawn?",
        "!What [hue|!shade] is {ref}?", "!Name the [colour|color|!hue] of {ref}.", "!Which [colour|color] has {ref} got?",
    ],
    "shape": [
        "What [shape|figure] is {ref}?", "Which [shape|figure] is {ref}?", "[What is|What's] the shape of {ref}?",
        "{ref}: what shape is it?", _ASK + " what shape {ref} is?", "What [kind|sort|type] of shape is {ref}?",
        "What shape does {ref} have?", "Tell me the shape of {ref}.", "Is {ref} a circle, a square, a triangle or a star?",
        "What is {ref} shaped like?", "What shape has {ref} got?", "Which of the four shapes is {ref}?",
        "What shape is {ref} drawn as?", "Which shape is {ref}: circle, square, triangle or star?",
        "!What [form|!outline] does {ref} take?", "!Identify the shape of {ref}.",
        "!What sort of figure would you call {ref}?",
    ],
    "position": [
        "[Where is|Where's] {ref}?", "Where [is|can I find|do you see] {ref} in the [picture|image]?",
        "Where is {ref} [located|placed]?", "[What is|What's] the position of {ref}?",
        "In which part of the [picture|image] is {ref}?", "{ref}: where is it?", _ASK + " where {ref} is?",
        "Which part of the [picture|image] is {ref} in?", "Where does {ref} sit?",
        "!Whereabouts is {ref}?", "!In what region of the [picture|image] does {ref} appear?", "!Point out where {ref} is.",
    ],
    "size": [
        "Is {ref} [large or small|small or large|big or small]?", "How [big|large] is {ref}?", "What size is {ref}?",
        "[What is|What's] the size of {ref}?", "Is {ref} a [large|big] one or a small one?", "{ref}: is it large or small?",
        _ASK + " if {ref} is large or small?", "Would you say {ref} is [large|big] or small?",
        "Is {ref} drawn large or small?", "Tell me whether {ref} is large or small.", "Is the size of {ref} large or small?",
        "Which size is {ref}, large or small?", "Large or small: which is {ref}?",
        "!Is {ref} little or large?", "!How would you describe the size of {ref}?", "!Is {ref} on the large or the small side?",
    ],
    "count": [
        "How many [shapes|objects|figures|things] are there?",
        "How many [shapes|objects|figures] [are in|can you see in|do you see in] the [picture|image]?",
        "[What is|What's] the number of shapes?", "Count the [shapes|objects].", "[Could|Can] you count the shapes?",
        "!What number of [shapes|!items] [are there|does the image show]?", "!Tally the [shapes|objects].",
        "!How many [shapes|!items] have been put in the [picture|image]?",
    ],
    "digit": [
        "What [digit|number] is [shown|written|drawn]?", "Which [digit|number] [appears|is shown] in the [picture|image]?",
        "[What is|What's] the [digit|number] in the [picture|image]?", "Is there a digit? Which one?",
        "Read the digit in the [picture|image].",
        "!Which numeral [is shown|appears]?", "!What numeral is written in the [picture|image]?",
        "!Can you read off the [digit|number]?",
    ],
    # Follow-ups: {it} is "it" (the object of the previous turn) or "the other one"; {its} its possessive.
    "colour.followup": [
        "[And |]what [colour|color] is {it}?", "What about {its} [colour|color]?", "And {its} [colour|color]?",
        "[And |]which [colour|color] is {it}?", "!How about {its} [colour|color|!hue]?", "!And the [hue|shade] of {it}?",
    ],
    "shape.followup": [
        "[And |]what shape is {it}?", "What about {its} shape?", "And {its} shape?", "[And |]what [kind|sort] of shape is {it}?",
        "!How about {its} shape?", "!And what form does {it} take?",
    ],
    "position.followup": [
        "[And |][where is|where's] {it}?", "What about {its} position?", "And where can I find {it}?",
        "!How about {its} position?", "!And whereabouts is {it}?",
    ],
    "size.followup": [
        "[And |]is {it} large or small?", "[And |]how big is {it}?", "What about {its} size?", "And {its} size?",
        "!How about {its} size?", "!And is {it} little or large?",
    ],
    # New image kinds.
    "yesno.colour": [
        "Is {ref} {colour}?", "Is {ref} [coloured|colored] {colour}?", "Is the [colour|color] of {ref} {colour}?",
        "[Would you say|Do you think] {ref} is {colour}?", "{ref}: is it {colour}?", "Is {ref} {colour} in [colour|color]?",
        _ASK + " if {ref} is {colour}?", "Is {ref} a {colour} one?", "Does {ref} look {colour}?",
        "!Is {ref} painted {colour}?", "!Does {ref} have a {colour} [hue|!tint]?",
    ],
    "yesno.shape": [
        "Is {ref} a {shape}?", "[Would you say|Do you think] {ref} is a {shape}?", "{ref}: is it a {shape}?",
        "Is {ref} shaped like a {shape}?", "Does {ref} look like a {shape}?", _ASK + " if {ref} is a {shape}?",
        "Is the shape of {ref} a {shape}?",
        "!Is {ref} in the form of a {shape}?", "!Would you call {ref} a {shape}?",
    ],
    "yesno.size": [
        "Is {ref} {size}?", "Is {ref} a {size} one?", "[Would you say|Do you think] {ref} is {size}?", "{ref}: is it {size}?",
        _ASK + " if {ref} is {size}?", "Does {ref} look {size}?", "Is {ref} drawn {size}?",
        "!Is {ref} on the {size} side?", "!Would you call {ref} {size}?",
    ],
    "yesno.position": [
        "Is {ref} at the {pos}?", "Is {ref} [located|placed] at the {pos}?", "[Would you say|Do you think] {ref} is at the {pos}?",
        "{ref}: is it at the {pos}?", _ASK + " if {ref} is at the {pos}?", "Can {ref} be found at the {pos}?",
        "Is {ref} in the {pos} of the [picture|image]?",
        "!Does {ref} sit in the {pos} region?", "!Would I find {ref} at the {pos}?",
    ],
    "yesno.exists": [
        "Is there {thing}?", "Is there {thing} in the [picture|image]?", "[Do|Can] you see {thing}?",
        "Does the [picture|image] [contain|show|have] {thing}?", "Is {thing} shown?", _ASK + " if there is {thing}?",
        "Can {thing} be seen?",
        "!Does {thing} appear anywhere?", "!Would I spot {thing} in the [picture|image]?",
    ],
    "relation.yesno": [
        "Is {a} {rel} {b}?", "[Would you say|Do you think] {a} is {rel} {b}?", "Is {a} placed {rel} {b}?",
        _ASK + " if {a} is {rel} {b}?", "Does {a} sit {rel} {b}?", "Is {a} found {rel} {b}?",
        "!Would I find {a} {rel} {b}?", "!Is it true that {a} lies {rel} {b}?",
    ],
    "relation.which": [
        "Which [shape|object|figure|one] is {rel} {b}?", "What is {rel} {b}?", "What [shape|object] [is|sits] {rel} {b}?",
        _ASK + " which shape is {rel} {b}?", "Which shape do you see {rel} {b}?",
        "!Name the shape {rel} {b}.", "!Which [item|shape] lies {rel} {b}?",
    ],
    "relation.bigger": [
        "Which is {cmp}, {a} or {b}?", "Which one is {cmp}, {a} or {b}?", "Which of {a} and {b} is {cmp}?",
        "Is {a} or {b} {cmp}?", "{a} or {b}: which is {cmp}?", _ASK + " which is {cmp}, {a} or {b}?",
        "Which shape is {cmp}: {a} or {b}?",
        "!Between {a} and {b}, which one is {cmp}?", "!Of {a} and {b}, which would you say is {cmp}?",
    ],
    "filtered_count": [
        "How many {things} are there?", "How many {things} [are in|can you see in|do you see in] the [picture|image]?",
        "[What is|What's] the number of {things}?", "Count the {things}.", _ASK + " how many {things} there are?",
        "{things}: how many are there?", "How many {things} [do you see|can you see]?", "How many {things} [are shown|are drawn]?",
        "Are there any {things}? How many?", "How many {things} does the [picture|image] show?",
        "Tell me how many {things} there are.",
        "!What number of {things} [are there|does the image show]?", "!Tally the {things}.",
        "!How many {things} does the [picture|image] contain?",
    ],
    # Audio.
    "kind": [
        "What [kind|type|sort] of sound is [this|that|it]?", "What [kind|type|sort] of sound do you hear?",
        "[What is|What's] this sound?", "What does this sound like?", _ASK + " what kind of sound this is?",
        "Describe the kind of sound.", "Is this a tone, beeps, a sweep or noise?",
        "What is [in|playing in] the [recording|audio]?",
        "!What category of sound is this?", "!Which variety of sound [is this|do you hear]?", "!What are you listening to?",
    ],
    "pitch": [
        "Is the [pitch|sound|tone] [low, medium or high|high, medium or low]?",
        "[What is|What's] the pitch of the [sound|tone]?", "How high is the [pitch|sound]?",
        "Is it [high-pitched|high], medium or [low-pitched|low]?", "Is this a low, medium or high [sound|tone]?",
        _ASK + " the pitch?", "Low, medium or high: what is the pitch?", "What pitch [is it|does it have]?",
        "!How would you rate the pitch: low, medium or high?", "!Is the [frequency|!register] low, medium or high?",
    ],
    "beeps": [
        "How many beeps [are there|do you hear|can you hear|does it make]?",
        "How many [beeps|bleeps] are [in the sound|in the recording]?", "How many times does it beep?",
        "Count the [beeps|bleeps].", "[What is|What's] the number of beeps?", "[Could|Can] you count the beeps?",
        "How many beeps [do you count|can you count]?", "Beeps: how many are there?", "How often does it beep?",
        "How many [beep sounds|short beeps] are there?",
        "!What number of [beeps|!pips] [are there|do you hear]?", "!Tally the [beeps|!pips].",
        "!How many pips does the sound make?",
    ],
    "sweep": [
        "Is the [sweep|tone|pitch] [rising or falling|falling or rising]?",
        "Does the [sweep|tone|pitch] [rise or fall|go up or down]?", "Is the sweep going up or down?",
        "Which way does the [sweep|pitch] go?", _ASK + " if the sweep is rising or falling?",
        "Rising or falling: which is the sweep?", "In which direction does the [sweep|pitch] move?",
        "!Is the glide [ascending|!climbing] or descending?", "!Does the pitch climb or drop?",
        "!Is the sweep ascending or descending?",
    ],
    # Video ({ref}: "the circle", "the red circle", "the shape").
    "motion": [
        "Which [way|direction] does {ref} [move|go]?", "In which direction does {ref} move?",
        "Which direction is {ref} moving[ in|]?", "Where does {ref} move?", "Does {ref} move left, right, up or down?",
        _ASK + " which way {ref} moves?", "{ref}: which way does it move?", "Which way is {ref} [going|moving|heading]?",
        "What direction does {ref} [move|go] in?", "Tell me which way {ref} moves.", "Where is {ref} moving[ to|]?",
        "!Toward which side does {ref} travel?", "!What is the direction of travel of {ref}?",
        "!Is {ref} drifting left, right, up or down?",
    ],
    "speed": [
        "Does {ref} move [fast or slow|slow or fast|quickly or slowly|slowly or quickly]?", "How fast does {ref} move?",
        "Is {ref} [moving|going] fast or slow?", "Is {ref} fast or slow?", "How quickly does {ref} move?",
        "What speed does {ref} move at?", _ASK + " how fast {ref} moves?", "{ref}: does it move fast or slow?",
        "Fast or slow: how does {ref} move?", "[What is|What's] the speed of {ref}?", "Is the motion of {ref} fast or slow?",
        "At what speed is {ref} moving?", "Is {ref} quick or slow?", "How fast is {ref} [moving|going]?",
        "!Is {ref} speedy or sluggish?", "!How rapidly does {ref} [travel|!drift]?", "!What pace does {ref} move at?",
    ],
    "object": [
        "What [is moving|moves][| in the clip| in the video]?", "Which [shape|object] is moving?",
        "What [shape|object|thing] [moves|is moving] in the [clip|video]?", _ASK + " what is moving?",
        "What do you see moving?",
        "!What [object|!item] travels across the [clip|video]?", "!Name the moving [object|!item].",
        "!Identify what is in motion.",
    ],
    "beep": [
        "Is the [beep|sound] [low, medium or high|high, medium or low]?", "[What is|What's] the pitch of the beep?",
        "How high is the beep?", "Is the beep [high-pitched|high], medium or [low-pitched|low]?",
        "What pitch [is the beep|does the beep have]?", _ASK + " the pitch of the beep?",
        "Low, medium or high: what is the beep?", "Is it a low, medium or high beep?", "Is the beep's pitch low, medium or high?",
        "How high-pitched is the beep?", "Is the tone of the beep low, medium or high?",
        "Would you say the beep is low, medium or high?",
        "!How would you rate the beep: low, medium or high?", "!Is the beep's [frequency|!register] low, medium or high?",
    ],
    "when": [
        "When [does the beep sound|is the beep heard|do you hear the beep|does the beep play]?",
        "Does the beep sound at the start or at the end?",
        "Is the beep [at the start or at the end|at the beginning or at the end|near the start or near the end]?",
        "[At what point|At which moment] does the beep sound?", "Does the beep come [at the start or at the end|early or late]?",
        _ASK + " when the beep sounds?", "When is the beep?", "The beep: when does it sound?",
        "Start or end: when does the beep sound?", "When in the [clip|video] does the beep sound?",
        "Is the beep heard [early|at the start] or [late|at the end]?",
        "!At what time in the clip is the beep audible?", "!Does the beep [occur|!happen] first or last?",
        "!Is the beep toward the opening or the close?",
    ],
    "difference": [
        "[What is|What's] the difference between the [two clips|two videos|clips|videos]?",
        "How do the [two clips|two videos] differ?", "What changed between the [two clips|two videos]?",
        "What is different [about|in] the second [clip|video]?", _ASK + " how the two clips differ?",
        "Compare the two [clips|videos].", "How are the two [clips|videos] different?",
        "!In what way do the two [clips|videos] [diverge|!vary]?", "!What distinguishes the first clip from the second?",
        "!Spot the difference between the two clips.",
    ],
}

# Words (lower case, whole words or phrases) that only held-out templates use: no seen question has them.
HELD_OUT_EN: tuple[str, ...] = (
    "hue", "shade", "outline", "identify", "whereabouts", "region", "point out", "little", "side",
    "what number of", "items", "item", "tally", "numeral", "read off", "category", "variety", "listening", "rate",
    "frequency", "register", "pips", "glide", "ascending", "descending", "climb", "toward", "travel", "drifting",
    "speedy", "sluggish", "rapidly", "drift", "pace", "travels", "in motion", "audible", "occur", "happen", "opening",
    "diverge", "vary", "distinguishes", "spot", "painted", "tint", "form", "anywhere", "lies", "further",
    "would i", "would you call", "middle", "greater", "tinier",
)

# Words that carry what a question asks: the typo channel leaves them alone.
PROTECTED_EN = frozenset(
    "colour color shape shapes figure figures where many large small big bigger larger smaller size digit number "
    "pitch beep beeps bleeps sweep rising falling rise fall fast slow quickly slowly quick left right above below "
    "under over higher lower beneath kind sort type sound tone noise moving move moves direction when start end "
    "beginning early late difference differ different changed same high medium low there position which what "
    "count item items circle circles square squares triangle triangles star stars object objects thing things".split()
)
