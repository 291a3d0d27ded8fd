from ftray.cli import main

main()
