from lyricgen.cli import main

main()
