; Hearth for Windows: a per-user installer (no administrator rights), Start-menu shortcut, and an
; uninstaller that keeps chats, settings and models unless the user ticks the box to delete them.
; Built by installers/windows/nsis.py:
;   makensis /DVERSION=0.1.0 /DPAYLOAD=<frozen bundle folder> /DOUTFILE=<setup.exe> hearth.nsi
Unicode true
SetCompressor /SOLID lzma
RequestExecutionLevel user

!ifndef VERSION
  !error "VERSION is not defined (makensis /DVERSION=...)"
!endif
!ifndef PAYLOAD
  !error "PAYLOAD is not defined: the folder of the frozen app (makensis /DPAYLOAD=...)"
!endif
!ifndef OUTFILE
  !define OUTFILE "Hearth-${VERSION}-setup.exe"
!endif
!ifndef ICON
  !define ICON "..\..\resources\hearth.ico"
!endif

!define APPNAME "Hearth"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Hearth"
; platformdirs' user data, config and cache folders for Hearth on Windows (appauthor=False).
!define USERDATA "$LOCALAPPDATA\Hearth"

Name "${APPNAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Hearth"
InstallDirRegKey HKCU "Software\Hearth" "InstallDir"
BrandingText "Hearth ${VERSION}"

!include "MUI2.nsh"
!include "FileFunc.nsh"
!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_FINISHPAGE_RUN "$INSTDIR\hearth.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start Hearth"
!define MUI_UNCOMPONENTSPAGE_TEXT_TOP "Your chats, settings and downloaded models are kept unless you tick the box below."

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_LICENSE "..\..\LICENSE"
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "Hearth"
VIAddVersionKey "FileDescription" "Hearth installer"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "LegalCopyright" "Apache License 2.0"

Section "Hearth" SecApp
  SectionIn RO
  ; An update replaces the program files only; the user's data lives in ${USERDATA}.
  RMDir /r "$INSTDIR\_internal"
  RMDir /r "$INSTDIR\builds"
  SetOutPath "$INSTDIR"
  File /r "${PAYLOAD}\*"
  WriteUninstaller "$INSTDIR\Uninstall Hearth.exe"
  CreateDirectory "$SMPROGRAMS\Hearth"
  CreateShortcut "$SMPROGRAMS\Hearth\Hearth.lnk" "$INSTDIR\hearth.exe" "" "$INSTDIR\hearth.exe" 0
  WriteRegStr HKCU "Software\Hearth" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "Hearth"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "Hearth developers"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\hearth.exe"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\Uninstall Hearth.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\Uninstall Hearth.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" $0
SectionEnd

Section "un.Hearth" UnSecApp
  SectionIn RO
  Delete "$SMPROGRAMS\Hearth\Hearth.lnk"
  RMDir "$SMPROGRAMS\Hearth"
  RMDir /r "$INSTDIR\_internal"
  RMDir /r "$INSTDIR\builds"
  RMDir /r "$INSTDIR\licenses"
  Delete "$INSTDIR\hearth.exe"
  Delete "$INSTDIR\LICENSE"
  Delete "$INSTDIR\THIRD_PARTY_NOTICES.md"
  Delete "$INSTDIR\Uninstall Hearth.exe"
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "Software\Hearth"
SectionEnd

; Unticked by default: an uninstall (or an update) never deletes the user's chats and models.
Section /o "un.Also delete my chats, settings and downloaded models" UnSecData
  RMDir /r "${USERDATA}"
SectionEnd
