from ranvier.cli import main

main()
