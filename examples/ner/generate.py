"""Generate seeded sentences with word-level BIO tags for PER, ORG, LOC and MISC entities.

Built to hold up on sentences people write, not only on its own output:
- names of people from many countries (given name + family name, family name alone after a
  title, a given name alone, particles such as "van der" or "de la", hyphenated names);
- organisations of many shapes (companies, banks, clubs, universities, agencies, charities,
  acronyms), places from cities and countries to rivers, regions and multi-word names
  ("Rio de Janeiro"), and MISC as CoNLL uses it: nationalities, languages, events and awards;
- ~150 sentence shapes over news, sports, business and everyday life, entities at the start,
  middle and end, several entities of one type side by side, and sentences with no entity.

Two hand-written files sit beside the generated data. `data/handwritten.jsonl` (76 sentences
written for ftray) joins the training data, as written and with a lead-in phrase, minus 15 that
join the validation split. `data/challenge.jsonl` (67 other sentences) is the example's test
split: nothing here reads it.

    python examples/ner/generate.py --out examples/ner/data
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

GIVEN = """Amara Tobias Ilse Ravi Noor Mateo Yuki Oskar Zanele Henrik Priya Dario Elodie Kwame
Sofia Liam Chen Wei Aiko Haruto Fatima Omar Leila Youssef Ingrid Lars Astrid Mikael Joao Beatriz
Camila Diego Valentina Santiago Ana Lucia Pedro Marta Pablo Chiara Giulia Marco Luca Francesca
Anna Katarzyna Piotr Tomasz Agnieszka Olga Dmitri Irina Sergei Nadia Hana Jakub Tereza Emeka
Chiamaka Ngozi Tunde Aisha Kofi Abena Wanjiru Kamau Thandiwe Sipho Arjun Ananya Rohan Meera
Vikram Deepa Sanjay Lakshmi Nguyen Linh Minh Thao Siti Budi Dewi Rizal Maria Jose Carlos Miguel
Gabriel Isabel Emma Olivia Noah James Charlotte Harry Amelia George Grace Jack Chloe Samuel
Hannah Daniel Rachel David Sarah Michael Laura Thomas Julia Peter Eva Paul Nina Hugo Lea Louis
Camille Jules Manon Felix Greta Jonas Lena Maximilian Mia Elif Mehmet Ayse Emre Zeynep Yasmin
Karim Rania Tariq Hyun Jisoo Minjun Seo Ji-woo Kenji Sakura Takeshi Mei Xiao Jun Bo Kiri Aroha
Tane Mele Sione Ines Nuno Rui Afonso Bjorn Sigrid Erik Freya Magnus Anders Tove Kaisa Juha Aino
Eero Dara Siobhan Niamh Cillian Aoife Rhys Carys Dylan Bronwen""".split()
FAMILY = """Vandermolen Okafor Lindqvist Marchetti Havel Nakashima Brennan Szabo Achterberg
Quispe Delacroix Mbeki Rasmussen Ferreira Garcia Fernandez Lopez Martinez Rodriguez Silva Santos
Oliveira Costa Pereira Rossi Bianchi Romano Esposito Ricci Muller Schmidt Schneider Fischer
Weber Becker Hoffmann Wagner Kowalski Nowak Wisniewski Ivanov Petrova Smirnov Novak Horvath
Kovacs Nagy Popescu Dimitrov Papadopoulos Yilmaz Kaya Demir Sahin Haddad Khalil Mansour Nasser
Farah Adeyemi Okonkwo Mensah Owusu Boateng Kamara Diallo Traore Ndlovu Dlamini Mokoena Kariuki
Otieno Mwangi Patel Sharma Gupta Singh Reddy Iyer Nair Banerjee Rao Khan Ahmed Hussain Rahman
Chowdhury Tanaka Suzuki Sato Watanabe Yamamoto Kobayashi Kim Lee Park Choi Jung Wang Li Zhang
Liu Chen Yang Huang Zhao Tran Pham Le Hoang Santoso Wijaya Smith Jones Taylor Brown Williams
Wilson Evans Thomas Johnson Roberts Walker Wright Robinson Thompson White Hughes Edwards Green
Hall Wood Harris Clarke Jackson Murphy Kelly Byrne Walsh Ryan Doyle Dubois Martin Bernard Moreau
Laurent Lefebvre Girard Andersen Nielsen Hansen Johansson Karlsson Nilsson Virtanen Korhonen
Jansen Visser Bakker Peeters Janssens Jovanovic Petrovic Hakimi Rahimi Moreno Torres Ramirez
Flores Cruz Gomez Castillo Vargas Morales Herrera Medina Alvarez""".split()
PARTICLES = ["van der", "van", "de", "de la", "da", "von", "al", "bin", "dos", "di", "le"]
TITLES = [
    "Mr",
    "Mrs",
    "Ms",
    "Dr",
    "Professor",
    "President",
    "Minister",
    "Judge",
    "Coach",
    "Captain",
    "Senator",
    "Chancellor",
    "Inspector",
    "Sister",
    "Chef",
    "Governor",
]

CITIES = """Lagos Nairobi Accra Cairo Casablanca Dakar Kampala Lusaka Harare Addis_Ababa
Cape_Town Johannesburg Durban Tunis Algiers Lima Bogota Quito Santiago Montevideo Caracas Havana
Buenos_Aires Sao_Paulo Rio_de_Janeiro Mexico_City Guadalajara Toronto Montreal Vancouver Chicago
Boston Seattle Denver Atlanta Houston Phoenix New_York Los_Angeles San_Francisco New_Orleans
London Manchester Leeds Glasgow Edinburgh Cardiff Belfast Dublin Cork Paris Lyon Marseille
Toulouse Brussels Antwerp Amsterdam Rotterdam Utrecht Berlin Hamburg Munich Cologne Leipzig
Vienna Zurich Geneva Basel Milan Turin Naples Florence Bologna Rome Madrid Barcelona Valencia
Seville Bilbao Lisbon Porto Oslo Bergen Stockholm Gothenburg Malmo Copenhagen Aarhus Helsinki
Tampere Reykjavik Warsaw Krakow Gdansk Prague Brno Budapest Bratislava Bucharest Sofia Athens
Thessaloniki Istanbul Ankara Izmir Tbilisi Yerevan Baku Beirut Amman Doha Dubai Riyadh Tehran
Karachi Lahore Delhi Mumbai Chennai Kolkata Bangalore Hyderabad Pune Dhaka Kathmandu Colombo
Bangkok Hanoi Ho_Chi_Minh_City Jakarta Surabaya Manila Cebu Kuala_Lumpur Singapore Shanghai
Beijing Shenzhen Chengdu Wuhan Hong_Kong Taipei Seoul Busan Tokyo Osaka Kyoto Sapporo Sydney
Melbourne Brisbane Perth Adelaide Auckland Wellington Christchurch"""
COUNTRIES = """Nigeria Kenya Ghana Egypt Morocco Senegal Uganda Zambia Zimbabwe Ethiopia
South_Africa Tunisia Peru Colombia Ecuador Chile Uruguay Venezuela Cuba Argentina Brazil Mexico
Canada the_United_States Britain England Scotland Wales Ireland France Belgium the_Netherlands
Germany Austria Switzerland Italy Spain Portugal Norway Sweden Denmark Finland Iceland Poland
Czechia Hungary Slovakia Romania Bulgaria Greece Turkey Georgia Armenia Lebanon Jordan Qatar
Iran Pakistan India Bangladesh Nepal Sri_Lanka Thailand Vietnam Indonesia the_Philippines
Malaysia China Taiwan South_Korea Japan Australia New_Zealand Ukraine Estonia Latvia Lithuania
Serbia Croatia Slovenia Albania Cyprus Malta Luxembourg Mongolia Kazakhstan"""
PLACES = """the Alps|the Andes|the Sahara|the Danube|the Rhine|the Nile|the Amazon|Lake Victoria|
Lake Como|the Baltic|the Mediterranean|the Pacific|the Atlantic|Mount Kenya|Mount Fuji|the Rift
Valley|Patagonia|Bavaria|Tuscany|Catalonia|Andalusia|Brittany|Flanders|Silesia|Siberia|
Kashmir|Bali|Sicily|Sardinia|Crete|Tasmania|Yorkshire|Cornwall|the Highlands|Normandy|
Provence|Galicia|Anatolia|Punjab|Kerala|Hokkaido|Scandinavia|the Balkans|the Caribbean|
Oxford Street|Times Square|Central Park|the Champs-Elysees|Heathrow|Schiphol""".replace("\n", " ")

ORG_WORDS = """Northwind Bluepeak Kestrel Silverline Redwood Ironbridge Greenfield Starling
Harbour Meridian Granite Summit Evergreen Lighthouse Copperfield Falcon Orion Atlas Pioneer
Horizon Oakridge Riverside Crescent Sterling Beacon Cobalt Maple Vantage Polaris Sapphire Cedar
Westbrook Eastgate Highland Nordic Baltic Pacific Andean Sahel Zenith Apex Nova Lumen""".split()
ORG_SUFFIX = [
    "Logistics",
    "Energy",
    "Bank",
    "Airlines",
    "Motors",
    "Pharma",
    "Foods",
    "Telecom",
    "Insurance",
    "Capital",
    "Partners",
    "Group",
    "Holdings",
    "Labs",
    "Systems",
    "Media",
    "Software",
    "Mining",
    "Shipping",
    "Robotics",
    "Textiles",
    "Brewery",
    "Hotels",
    "Ltd",
    "Inc",
    "AG",
    "GmbH",
    "Corporation",
    "Foundation",
    "Trust",
    "Studios",
    "Press",
    "Electric",
    "Steel",
    "Cement",
    "Retail",
]
ORG_HEADS = [
    "Association",
    "Council",
    "Academy",
    "Institute",
    "Society",
    "League",
    "Federation",
    "Union",
    "Party",
    "Navy",
    "Air Force",
    "Museum",
    "Library",
    "Orchestra",
    "Gallery",
]
ORG_FIELDS = [
    "Medical",
    "Football",
    "Writers",
    "Farmers",
    "Teachers",
    "Chess",
    "Olympic",
    "National",
    "Science",
    "Nurses",
    "Dental",
    "Film",
    "Workers",
    "Green",
    "Labour",
]
KNOWN_ORGS = """Google|Microsoft|Apple|Amazon|Siemens|Toyota|Samsung|Nestle|Unilever|Shell|
Volkswagen|Airbus|Boeing|Ikea|Spotify|Netflix|Nokia|Philips|Heineken|Adidas|Puma|Sony|
Honda|Tata Motors|Infosys|Alibaba|Tencent|Huawei|Safaricom|Dangote Cement|Petrobras|
Vale|Ryanair|Lufthansa|Emirates|Qantas|Reuters|the BBC|Al Jazeera|the Guardian|the New York
Times|Le Monde|the United Nations|UNICEF|the World Bank|the IMF|the European Union|NATO|
the World Health Organization|Oxfam|the Red Cross|Greenpeace|FIFA|UEFA|the African Union|
the European Central Bank|the Federal Reserve|Harvard University|Stanford University|MIT|
Oxford University|the Sorbonne|the University of Tokyo|Real Madrid|Barcelona FC|Bayern
Munich|Juventus|Ajax|Arsenal|Liverpool FC|Manchester United|Boca Juniors|Kaizer Chiefs|
Al Ahly|the Lakers|the Yankees|the All Blacks|Interpol|the Supreme Court|Parliament|
Toyota Motor|Deutsche Bank|HSBC|Barclays|Credit Suisse""".replace("\n", " ")
ORG_PATTERNS = [
    "{country} Rail",
    "Air {country}",
    "{city} Water Board",
    "{country} Cricket Board",
    "{country} Rugby Union",
    "{city} Transport Authority",
    "{city} Metro",
    "Radio {country}",
    "{country} Red Cross",
    "{city} Zoo",
    "{city} Film Festival Trust",
    "{city} Port Authority",
    "Statistics {country}",
    "{country} Meteorological Office",
    "World {word} Council",
    "Global {word} Fund",
    "{word} Foundation",
    "Friends of the {word}",
    "{nat} {head}",
    "{nat} {field} {head}",
    "the {nat} {head}",
    "{country} {field} {head}",
    "St {given} 's School",
    "St {given} 's Hospital",
    "{family} and {family}",
    "{family} & Sons",
    "University of {city}",
    "{city} City Council",
    "{city} General Hospital",
    "{city} United",
    "FC {city}",
    "{city} Rovers",
    "Bank of {country}",
    "{country} Football Association",
    "{city} Chamber of Commerce",
    "{city} Symphony Orchestra",
    "{city} Institute of Technology",
    "Ministry of Health",
    "Ministry of Finance",
    "{country} Airways",
    "{country} Post",
    "{city} Police",
    "Royal {country} Bank",
]

NATIONALITIES = """Nigerian Kenyan Ghanaian Egyptian Moroccan Senegalese Ugandan Ethiopian
Peruvian Colombian Chilean Uruguayan Cuban Argentine Brazilian Mexican Canadian American British
English Scottish Welsh Irish French Belgian Dutch German Austrian Swiss Italian Spanish
Portuguese Norwegian Swedish Danish Finnish Icelandic Polish Czech Hungarian Romanian Bulgarian
Greek Turkish Georgian Lebanese Iranian Pakistani Indian Bangladeshi Nepalese Thai Vietnamese
Indonesian Filipino Malaysian Chinese Korean Japanese Australian Ukrainian Estonian Serbian
Croatian European African Asian Scandinavian Latin""".split()
LANGUAGES = [
    "English",
    "French",
    "Spanish",
    "Arabic",
    "Swahili",
    "Mandarin",
    "Hindi",
    "Portuguese",
    "German",
    "Japanese",
    "Korean",
    "Polish",
    "Yoruba",
    "Tagalog",
    "Bengali",
    "Turkish",
    "Dutch",
    "Italian",
    "Russian",
    "Urdu",
    "Catalan",
    "Zulu",
]
EVENTS = """World Cup|Olympics|Olympic Games|Champions League|Tour de France|Wimbledon|
Australian Open|Africa Cup of Nations|Copa America|Super Bowl|Ryder Cup|Six Nations|Euro
2024|Commonwealth Games|Paralympics|Rugby World Cup|Cannes Film Festival|Eurovision|
Edinburgh Festival|Oktoberfest|Carnival|Ramadan|Diwali|Christmas|Easter|Hanukkah|Lunar New
Year|Nobel Prize|Booker Prize|Pulitzer Prize|Oscars|Grammy|Ballon d'Or|Paris Agreement|
Industrial Revolution|Cold War|Renaissance|Brexit|Formula One|Premier League|Serie A|La
Liga|Bundesliga|Grand Prix|Boston Marathon|London Marathon|Chelsea Flower Show""".replace("\n", " ")


def split_pool(text: str) -> list[str]:
    """Whitespace-separated entries; '_' joins the words of a multi-word name."""
    return [entry.replace("_", " ") for entry in text.split()]


CITY_LIST = split_pool(CITIES)
COUNTRY_LIST = split_pool(COUNTRIES)
PLACE_LIST = [" ".join(p.split()) for p in PLACES.split("|") if p.strip()]
KNOWN_ORG_LIST = [" ".join(p.split()) for p in KNOWN_ORGS.split("|") if p.strip()]
EVENT_LIST = [" ".join(p.split()) for p in EVENTS.split("|") if p.strip()]


def person(rng: random.Random) -> list[tuple[str, str]]:
    """A person's name as (word, tag) pairs; titles are not part of the entity."""
    roll = rng.random()
    if roll < 0.5:
        words = [rng.choice(GIVEN), rng.choice(FAMILY)]
    elif roll < 0.6:
        words = [rng.choice(GIVEN), *rng.choice(PARTICLES).split(), rng.choice(FAMILY)]
    elif roll < 0.67:
        words = [rng.choice(GIVEN), f"{rng.choice(FAMILY)}-{rng.choice(FAMILY)}"]
    elif roll < 0.72:
        words = [rng.choice(GIVEN), rng.choice(GIVEN), rng.choice(FAMILY)]
    elif roll < 0.87:
        title = [(rng.choice(TITLES), "O")]
        return title + tagged([rng.choice(FAMILY)], "PER")
    else:
        words = [rng.choice(FAMILY) if rng.random() < 0.5 else rng.choice(GIVEN)]
    return tagged(words, "PER")


def organisation(rng: random.Random) -> list[tuple[str, str]]:
    roll = rng.random()
    if roll < 0.35:
        name = rng.choice(KNOWN_ORG_LIST)
    elif roll < 0.7:
        name = f"{rng.choice(ORG_WORDS)} {rng.choice(ORG_SUFFIX)}"
    elif roll < 0.8:
        name = "".join(rng.choice("ABCDEFGHIKLMNPRSTUVW") for _ in range(rng.randint(2, 4)))
    else:
        name = rng.choice(ORG_PATTERNS).format(
            city=rng.choice(CITY_LIST),
            country=rng.choice(COUNTRY_LIST).removeprefix("the "),
            word=rng.choice(
                [
                    "Food",
                    "Water",
                    "Health",
                    "Wildlife",
                    "Ocean",
                    "Energy",
                    "Forest",
                    "Children",
                    "Heritage",
                    "Music",
                    "Science",
                    "Trade",
                ]
            ),
            given=rng.choice(GIVEN),
            family=rng.choice(FAMILY),
            nat=rng.choice(NATIONALITIES),
            head=rng.choice(ORG_HEADS),
            field=rng.choice(ORG_FIELDS),
        )
    return tagged_with_article(name, "ORG")


def location(rng: random.Random) -> list[tuple[str, str]]:
    roll = rng.random()
    name = rng.choice(CITY_LIST if roll < 0.55 else COUNTRY_LIST if roll < 0.85 else PLACE_LIST)
    return tagged_with_article(name, "LOC")


def misc(rng: random.Random, kind: str = "") -> list[tuple[str, str]]:
    kind = kind or rng.choice(["NAT", "NAT", "LANG", "EVENT"])
    source = {"NAT": NATIONALITIES, "LANG": LANGUAGES, "EVENT": EVENT_LIST}[kind]
    return tagged(rng.choice(source).split(), "MISC")


def tagged(words: list[str], kind: str) -> list[tuple[str, str]]:
    return [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(words)]


def tagged_with_article(name: str, kind: str) -> list[tuple[str, str]]:
    """'the Nile': the article stays outside the entity (as CoNLL tags it)."""
    words = name.split()
    if words[0] == "the":
        return [("the", "O"), *tagged(words[1:], kind)]
    return tagged(words, kind)


# Slots: {PER} {ORG} {LOC} {MISC} {NAT} {LANG} {EVENT}; everything else is O.
TEMPLATES = {
    "news": """{PER} arrived in {LOC} on Tuesday .
Officials in {LOC} met {PER} to discuss the flooding .
{PER} , a spokesperson for {ORG} , declined to comment .
Residents of {LOC} gathered outside the town hall on Sunday .
The {NAT} government said it would reopen the border with {LOC} .
{PER} told reporters in {LOC} that talks with {ORG} had stalled .
According to {ORG} , more than 2,000 people were evacuated from {LOC} .
Police in {LOC} are searching for a man who escaped from custody .
{PER} , who has lived in {LOC} since 1998 , won the local election .
A {NAT} court sentenced {PER} to six years in prison .
Protesters marched from {LOC} to the offices of {ORG} .
The visit by {PER} to {LOC} was cancelled because of the storm .
Heavy rain closed roads across {LOC} and parts of {LOC} .
{ORG} warned that food prices in {LOC} could double this year .
{PER} was born in {LOC} and studied at {ORG} .
Speaking in {LANG} , {PER} thanked the volunteers .
The minister , {PER} , resigned after the report was published .
Thousands celebrated {EVENT} in the streets of {LOC} .
Earlier this week {PER} met {PER} in {LOC} .
A train from {LOC} to {LOC} derailed early on Monday , injuring twelve passengers .
{ORG} has opened an investigation into the fire .
The ceasefire was announced by {PER} after a meeting with {ORG} .
{LOC} and {LOC} signed a new trade agreement on Friday .
Doctors at {ORG} said the patient was in a stable condition .
The mayor of {LOC} , {PER} , promised to build more housing .
Firefighters from {LOC} helped to put out the blaze .
Nobody was hurt when the roof of the {NOUN} collapsed {DAY} .
The {NOUN} will stay closed until the end of the month .
Schools reopened on {DAY} after a two-week break .
About {NUM} people waited outside the {NOUN} for news .
The old {NOUN} will be turned into flats , the council said .
Prices for bread and milk rose again {DAY} .
Volunteers handed out {NUM} blankets near the {NOUN} .
{PER} said the decision was taken by {ORG} alone .
Aid from {ORG} reached {LOC} late on Thursday .
{NAT} and {NAT} diplomats met behind closed doors .
Journalists from {ORG} were refused entry to {LOC} .
Prices of {THING} and {THING} rose sharply in {LOC} .
{PER} , who works in {FIELD} , said the rules on {THING} were unfair .
A shortage of {THING} has hit farmers across {LOC} .
Demand for {THING} fell after the {THING} crisis .
Police said {NUM} people were arrested after the protest over {THING} .
The report blamed {THING} and poor {THING} for the accident .
Exports of {THING} to {LOC} doubled , the ministry said .
{THING} prices dropped for the {NUM} month in a row .""",
    "sports": """{PER} scored twice as {ORG} beat the visitors in {LOC} .
The {EVENT} final will be held in {LOC} next month .
{ORG} signed {PER} ahead of the {EVENT} .
{PER} finished second behind {PER} at the {EVENT} .
The {NAT} striker {PER} has joined {ORG} on a three-year deal .
{PER} won the {EVENT} for the third time .
{ORG} were held to a draw by {ORG} on Saturday .
Coach {PER} blamed the referee after the defeat in {LOC} .
{PER} , the {NAT} champion , pulled out with a knee injury .
Fans travelled from {LOC} to watch the game .
{PER} broke the world record in {LOC} on Sunday .
{ORG} confirmed that {PER} will miss the rest of the season .
The {NAT} team arrived in {LOC} two days before the {EVENT} .
{PER} beat {PER} in straight sets to reach the final .
It was the first time {ORG} had lost at home since 2019 .
{PER} crossed the line ahead of {PER} and {PER} .
{LOC} will host the {EVENT} in 2030 .
The match was postponed because of snow {DAY} .
The home side scored in the last minute to win the game .
Only {NUM} fans were allowed into the stadium {DAY} .
The goalkeeper was sent off after {NUM} minutes .
Both teams looked tired in the second half .
After the race {PER} thanked her coach and her family .
{ORG} sacked their manager after five defeats in a row .
{PER} , 19 , made her debut for {ORG} against {ORG} .
The marathon starts in {LOC} and ends near {LOC} .
{NAT} fans sang throughout the match in {LOC} .
{PER} has been named captain of the {NAT} team .
{ORG} beat {ORG} {SCORE} on {DAY} .
The {TEAMKIND} side lost {SCORE} in {LOC} .
{PER} took {MEDAL} after a tense duel with {PER} .
{PER} plays for the {TEAMKIND} side of {ORG} .
The {NAT} {THING} team finished third .""",
    "business": """{ORG} opened a new office in {LOC} , said {PER} .
Shares of {ORG} rose after the company reported strong sales .
{PER} will lead the {LOC} division of {ORG} from June .
{ORG} and {ORG} agreed to merge their {LOC} operations .
{ORG} is cutting 500 jobs at its factory in {LOC} .
The chief executive of {ORG} , {PER} , will step down next year .
{ORG} bought a stake in {ORG} for 2 billion euros .
{PER} founded {ORG} in {LOC} in 2011 .
Investors in {LOC} welcomed the decision by {ORG} to cut interest rates .
{ORG} said profits fell by a third in the last quarter .
The {NAT} carmaker plans to build a plant near {LOC} .
{PER} , an analyst at {ORG} , expects prices to rise .
{ORG} has hired {PER} as its new finance director .
Exports from {LOC} to {LOC} grew by 8 percent .
{ORG} launched its app in {LANG} and {LANG} .
A deal between {ORG} and the {NAT} government is expected this week .
{PER} sold her shares in {ORG} before the announcement .
The startup , based in {LOC} , raised money from {ORG} .
{ORG} recalled 20,000 cars after a fault was found in the brakes .
Prices rose faster than expected in March .
The firm hired {NUM} new staff for its {NOUN} project .
Demand for office space fell for the {NUM} quarter in a row .
The company will move its headquarters from {LOC} to {LOC} .
Workers at {ORG} in {LOC} went on strike over pay .
{PER} and {PER} left {ORG} to start their own firm .
Sales of electric bikes doubled last year .
{ORG} will invest in {THING} and {THING} in {LOC} .
A {NAT} maker of {THING} plans to list its shares in {LOC} .
Output of {THING} at the plant near {LOC} fell by a fifth .""",
    "everyday": """I met {PER} at a café in {LOC} last summer .
My cousin {PER} works for {ORG} in {LOC} .
We drove from {LOC} to {LOC} in one day .
{PER} recommended a {NAT} restaurant near the station .
Our neighbour {PER} is learning {LANG} before her trip to {LOC} .
{PER} and I watched the {EVENT} at a bar in {LOC} .
The parcel from {ORG} arrived two days late .
Have you ever been to {LOC} ?
{PER} says the best coffee is in {LOC} .
My sister moved to {LOC} to study at {ORG} .
Dr {PER} told me to rest for a week .
We are spending {EVENT} with {PER} and her kids .
{PER} lent me a book about the history of {LOC} .
The flight to {LOC} was delayed by three hours .
I called {ORG} twice but nobody answered .
{PER} grew up on a farm outside {LOC} .
Tomorrow we take the ferry to {LOC} .
She speaks {LANG} , {LANG} and a little {LANG} .
The kids loved the beach {DAY} .
We stayed at home and cooked dinner together {DAY} .
It rained all weekend , so we stayed inside .
I left my umbrella at the {NOUN} again .
Can we meet near the {NOUN} at {NUM} ?
My phone died halfway through the call {DAY} .
We walked {NUM} kilometres and saw nobody .
{PER} sent photos of the mountains in {LOC} .
Thanks to {PER} for the lift to the airport !
Is {PER} still working at {ORG} ?
We had {THING} and {THING} for dinner at {PER} 's place .
My neighbour {PER} grows {THING} in her garden .
The shop near the {NOUN} sells {THING} and {THING} .
I finally fixed the {THING} problem in the kitchen .
{PER} is studying {FIELD} in {LOC} .
My colleague {PER} in {FIELD} lent me a book about {THING} .
We ate {NAT} {THING} at a market stall in {LOC} .""",
}

DAYS = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
    "today",
    "yesterday",
    "last week",
    "this morning",
    "tonight",
]
NOUNS = [
    "bridge",
    "school",
    "market",
    "station",
    "library",
    "hospital",
    "museum",
    "stadium",
    "factory",
    "harbour",
    "airport",
    "park",
    "road",
    "bakery",
    "theatre",
    "clinic",
]
NUMBERS = [
    "two",
    "three",
    "four",
    "five",
    "ten",
    "twelve",
    "twenty",
    "fifty",
    "100",
    "300",
    "1,500",
    "2,000",
]


# Ordinary words in the places where templates put names, so that "a word the templates never
# used" does not come to mean "an entity".
COMMON_NOUNS = """marketing coffee rice steel wheat cotton timber oil gas tea cocoa sugar salt
plastic glass paper weather traffic rain snow flooding drought heat harvest tourism fishing
farming mining banking insurance software hardware medicine nursing teaching engineering law
politics music dance art poetry cooking baking cycling rowing swimming tennis cricket football
rugby boxing chess yoga finance sales logistics recruitment security catering cleaning design
photography journalism students teachers nurses doctors farmers drivers fans voters workers
tourists volunteers pilots bread cheese pasta soup curry noodles dumplings salad pastries
coffee wine beer juice honey apples oranges bananas mangoes tomatoes potatoes onions garlic
pepper lamb beef chicken fish wool leather silk denim bicycles tractors trucks buses ferries
trains laptops phones batteries solar wind hydrogen nuclear diesel petrol vaccines insulin
antibiotics housing rents wages pensions taxes tariffs exports imports shares bonds profits
losses debt inflation interest""".split()
FIELDS = [
    "marketing",
    "sales",
    "design",
    "finance",
    "logistics",
    "customer service",
    "engineering",
    "human resources",
    "legal",
    "IT support",
]
MEDALS = ["a medal", "the title", "the trophy", "the race", "the sprint", "the final stage"]
TEAM_KINDS = ["women 's", "reserve", "under-21", "national", "junior", "senior", "veterans"]
SCORES = ["2-1", "3-0", "1-1", "4-2", "0-0", "5-3", "2-2", "1-0"]


def plain(words: list[str]):
    """A slot filled with ordinary words: varies the entity-free sentences."""
    return lambda rng: [(w, "O") for w in rng.choice(words).split()]


SLOTS = {
    "THING": plain(COMMON_NOUNS),
    "FIELD": plain(FIELDS),
    "MEDAL": plain(MEDALS),
    "TEAMKIND": plain(TEAM_KINDS),
    "SCORE": plain(SCORES),
    "DAY": plain(DAYS),
    "NOUN": plain(NOUNS),
    "NUM": plain(NUMBERS),
    "PER": person,
    "ORG": organisation,
    "LOC": location,
    "MISC": misc,
    "NAT": lambda rng: misc(rng, "NAT"),
    "LANG": lambda rng: misc(rng, "LANG"),
    "EVENT": lambda rng: misc(rng, "EVENT"),
}


def sentence(rng: random.Random, group: str) -> dict:
    template = rng.choice(TEMPLATES[group].splitlines())
    pairs: list[tuple[str, str]] = []
    for piece in re.split(r"(\{[A-Z]+\})", template):
        if piece.startswith("{"):
            pairs += SLOTS[piece[1:-1]](rng)
        else:
            pairs += [(word, "O") for word in piece.split()]
    if pairs[0][1] == "O" and pairs[0][0] == "the":
        pairs[0] = ("The", "O")
    return {"tokens": [w for w, _ in pairs], "tags": [t for _, t in pairs], "group": group}


def generate(count: int, seed: int) -> list[dict]:
    """`count` distinct sentences (a repeated sentence teaches nothing new)."""
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        row = sentence(rng, rng.choice(list(TEMPLATES)))
        text = " ".join(row["tokens"])
        if text not in seen:
            seen.add(text)
            rows.append(row)
    return rows


HANDWRITTEN = Path(__file__).parent / "data" / "handwritten.jsonl"
HANDWRITTEN_VALIDATION = 15
LEAD_INS = [["Yesterday", ","], ["On", "Monday", ","], ["Meanwhile", ","], ["Last", "year", ","],
            ["In", "other", "news", ","], ["As", "expected", ","]]  # fmt: skip


def handwritten(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """The hand-written sentences: most for training (as written and after a lead-in phrase),
    HANDWRITTEN_VALIDATION for validation."""
    rows = [json.loads(line) for line in HANDWRITTEN.read_text().splitlines() if line.strip()]
    rng.shuffle(rows)
    validation, train = rows[:HANDWRITTEN_VALIDATION], rows[HANDWRITTEN_VALIDATION:]
    variants = []
    for row in train:
        lead = rng.choice(LEAD_INS)
        first = row["tokens"][0] if row["tags"][0] != "O" else row["tokens"][0].lower()
        variants += [row, {**row, "tokens": [*lead, first, *row["tokens"][1:]],
                           "tags": ["O"] * len(lead) + row["tags"]}]  # fmt: skip
    return variants, validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--validation", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    train = generate(args.train, args.seed)
    seen = {" ".join(r["tokens"]) for r in train}
    validation = []
    for row in generate(args.validation * 3, args.seed + 1):  # held out: unseen sentences only
        text = " ".join(row["tokens"])
        if text not in seen and len(validation) < args.validation:
            seen.add(text)
            validation.append(row)
    rng = random.Random(args.seed + 2)
    written_train, written_validation = handwritten(rng)
    train += written_train
    rng.shuffle(train)
    validation += written_validation
    for name, rows in (("train", train), ("validation", validation)):
        (args.out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
