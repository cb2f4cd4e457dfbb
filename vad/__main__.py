from vad.cli import main

main()
